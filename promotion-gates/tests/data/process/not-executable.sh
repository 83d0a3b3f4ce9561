#!/bin/sh
# Broken variant: committed WITHOUT the execute bit (mode 0644), so running it directly
# fails with "permission denied". Never meant to run.
echo "this should never run"
