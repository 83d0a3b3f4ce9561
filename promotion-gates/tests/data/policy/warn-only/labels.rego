package release

# Labels are recommended, not required: a missing one is only a warning.
warn_team contains "release has no `team` label" if {
	not input.release.labels.team
}

warn_ticket contains "release has no `ticket` label" if {
	not input.release.labels.ticket
}

deny contains msg if {
	not input.release.labels.team
	input.stage == "production"
	msg := "a production release needs a `team` label"
}
