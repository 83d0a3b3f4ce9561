package main

# Conftest requires a string `msg` field in structured results; this one uses `message`.
violation contains {"message": "release was not built by the trusted builder", "builder": input.release.builder} if {
	input.release.builder != "ci.example.com"
}
