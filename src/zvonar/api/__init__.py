"""HTTP boundary: error translation, authentication dependencies, pagination, the app factory."""
