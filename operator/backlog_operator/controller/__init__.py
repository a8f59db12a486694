"""The operator: thin kopf handlers over reconcilers."""
