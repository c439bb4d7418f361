"""The insights of SPEC 4, computed from a tenant's CRM records and activity metadata."""
