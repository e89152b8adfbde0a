"""The shipped reference models of the embedded default (see README.md here)."""
