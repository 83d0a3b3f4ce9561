package main

# Helpers only: no deny, violation or warn rule, so this package decides nothing.
approved_registries := ["registry.example.com/shop/"]

artifact_names := [a.name | some a in input.release.artifacts]
