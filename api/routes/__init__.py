"""The API's routes, one module per resource; `versioned_router` mounts them for current and kept releases."""
