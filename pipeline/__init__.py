"""The main job: the one package that runs every stage together (the stages themselves never import each other)."""
