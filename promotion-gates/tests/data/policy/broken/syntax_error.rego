package main

# The closing bracket of the sprintf arguments is missing on line 9.
deny contains msg if {
	some artifact in input.release.artifacts
	not startswith(artifact.uri, "registry.example.com/")
	msg := sprintf(
		"artifact `%s` is not from an approved registry",
		[artifact.name
	)
}
