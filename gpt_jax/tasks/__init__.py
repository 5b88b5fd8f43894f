"""Tasks shipped with the package: source → target pairs generated offline from a fixed seed."""
