# Release policy for the compliance stage, in Conftest conventions:
# `deny`, `violation` and `deny_*` fail the gate, `warn*` is recorded only.
package main

# Every artifact must come from an approved registry (data.registries.allowed,
# loaded from registries/data.json).
deny contains msg if {
	some artifact in input.release.artifacts
	not approved_registry(artifact)
	msg := sprintf("artifact `%s` is not from an approved registry (%s)", [artifact.name, object.get(artifact, "uri", "no location recorded")])
}

approved_registry(artifact) if {
	some prefix in data.registries.allowed
	startswith(artifact.uri, prefix)
}

# A high-risk change needs a rollback plan on record before it reaches production.
deny_high_risk contains msg if {
	some gate in input.gates
	gate.gate == "change-record"
	gate.facts.risk == "high"
	not input.release.labels["rollback-plan"]
	msg := sprintf("change record (stage %s) rates the change as high risk, but the release has no `rollback-plan` label", [gate.stage])
}

# Only the trusted build service may produce releases (data.builders, from the root data.json).
violation contains {"msg": msg, "builder": input.release.builder} if {
	not input.release.builder in data.builders.trusted
	msg := sprintf("release was built by `%s`, which is not a trusted builder", [input.release.builder])
}

# Called by its full path: regorus 0.5 does not resolve functions through an
# `import data.lib.labels` alias (see broken/import_alias.rego).
warn contains msg if {
	some label in data.lib.labels.missing(input.release)
	msg := sprintf("release has no `%s` label", [label])
}
