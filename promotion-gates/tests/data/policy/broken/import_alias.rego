package main

import data.lib.labels

# Valid for OPA, but regorus 0.5 does not resolve a function through an import
# alias; the gate must refuse to load it rather than skip the rule.
warn contains msg if {
	some label in labels.missing(input.release)
	msg := sprintf("release has no `%s` label", [label])
}
