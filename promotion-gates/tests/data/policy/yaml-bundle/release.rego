package main

deny contains msg if {
	some artifact in input.release.artifacts
	not artifact.uri in data.registries
	msg := sprintf("artifact `%s` is not from an approved registry", [artifact.name])
}
