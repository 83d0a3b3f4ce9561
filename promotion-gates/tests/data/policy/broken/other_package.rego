package release.checks

deny contains "always" if {
	true
}
