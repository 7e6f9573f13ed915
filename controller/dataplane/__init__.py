"""The controller's data-plane side: the P4 program's outputs, the entries a placement needs, and P4Runtime."""
