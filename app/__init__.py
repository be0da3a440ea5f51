"""Carbon Gateway: estimate greenhouse-gas emissions and offset them through one GraphQL API."""
