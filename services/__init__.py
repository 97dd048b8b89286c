"""Built-in implementations of outside services for the embedded default (and tests):
production points the runner at real ones by configuration."""
