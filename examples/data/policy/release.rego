# The shop's release policy, in Conftest conventions: `deny*` fails the compliance
# stage, `warn*` is recorded.
package main

# Only the company's build service may produce releases.
deny contains msg if {
	not trusted_builder
	msg := sprintf("release was built by `%s`, which is not a trusted builder", [input.release.builder])
}

trusted_builder if {
	some prefix in data.builders.trusted
	startswith(input.release.builder, prefix)
}

# A high-risk change must name its rollback command on the release itself.
deny_high_risk contains msg if {
	some gate in input.gates
	gate.gate == "change-record"
	gate.facts.risk == "high"
	not input.release.labels["rollback-plan"]
	msg := "the change record rates the change high risk, but the release has no `rollback-plan` label"
}

# Every earlier gate of this release must have passed (or been overridden by break glass).
deny_unpassed contains msg if {
	some gate in input.gates
	gate.stage != input.stage
	gate.outcome != "pass"
	not gate.overridden_by
	msg := sprintf("gate `%s` of stage `%s` did not pass (%s)", [gate.gate, gate.stage, gate.outcome])
}

warn contains msg if {
	not input.release.labels.service
	msg := "release has no `service` label"
}
