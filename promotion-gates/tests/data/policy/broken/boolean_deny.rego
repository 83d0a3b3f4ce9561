package main

# An OPA-style boolean decision: Conftest expects `deny` to be a set of messages,
# so this rule would never produce a failure message.
default deny := false

deny if {
	count(input.release.artifacts) > 10
}
