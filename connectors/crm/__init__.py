"""Outbound CRM targets: each module pushes a lead (the API's lead JSON) to one external CRM."""
