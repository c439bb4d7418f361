"""Identity adapters: access-token validation and role-based permissions."""
