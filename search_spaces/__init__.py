"""The search-space specs shipped with recnas (YAML files in this folder)."""
