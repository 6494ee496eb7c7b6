"""HTTP routes: thin functions over the service and the engine."""
