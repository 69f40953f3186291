"""Model builders and the factories that turn config into Keras objects (no MLflow here)."""
