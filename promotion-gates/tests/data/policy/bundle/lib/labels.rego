# Label helpers shared by the release policies.
package lib.labels

# Labels every release should carry; a missing one is a warning, not a denial.
recommended := ["team", "ticket"]

missing(release) := {label |
	some label in recommended
	not release.labels[label]
}
