"""HTTP and timer entry points: thin adapters between the Functions runtime and the app's core."""
