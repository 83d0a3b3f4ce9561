package main

# `ratio` divides by the number of contributors, which is zero for an automated release.
deny contains msg if {
	ratio := count(input.release.artifacts) / count(input.release.contributors)
	ratio > 5
	msg := sprintf("%v artifacts per contributor", [ratio])
}
