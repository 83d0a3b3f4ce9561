#!/bin/sh
# A check that hangs and leaves a grandchild behind. It records its own pid in ./runner.pid
# and the pid of a backgrounded `sleep` (the gate's grandchild) in ./grandchild.pid, both in
# its working directory, then waits on a foreground `sleep`.
# Used to prove that the gate's timeout kills the whole process group, grandchild included.
echo "$$" > runner.pid
sleep 300 &
echo "$!" > grandchild.pid
echo "started grandchild $!"
sleep 300
wait
