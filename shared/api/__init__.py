"""The HTTP API's shapes: request parsing, response models, problem documents and the OpenAPI document."""
