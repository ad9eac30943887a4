"""`llava-vit adopt`: turn an upstream OneVision-Encoder repo (same architecture, same state-dict keys, hand-kept
remote code) into a llava-vit model repo, and prove in two processes that both give the same numbers."""
