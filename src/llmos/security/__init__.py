"""Security and tenancy: tenants, hashed API keys with scopes, limits, budgets, usage and audit."""
