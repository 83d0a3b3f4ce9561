# A pre-1.0 Conftest policy (Rego v0 syntax: no `if`, `contains` or `in`).
package main

deny[msg] {
	artifact := input.release.artifacts[_]
	not startswith(artifact.uri, "registry.example.com/")
	msg := sprintf("artifact `%s` is not from an approved registry", [artifact.name])
}

warn[msg] {
	not input.release.labels.team
	msg := "release has no `team` label"
}
