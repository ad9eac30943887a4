"""The trust boundary: the one way llava-vit reads a repo it has not proven, and the one definition of what in
it could run.

Every judge (guard, check, verify, audit, upload, publish) goes through these modules, in this order of imports:
`opener` (a regular file, never followed, capped while reading) <- `gitdb` (git's object database of the judged
commit, with nothing the repo configures ever run) <- `reader` (a folder, a commit, a pushed range or a Hub
revision as one list of entries) <- `sniff` (pickles and tokens by content, inside containers too) <- `runnable`
(what transformers or the Hub could execute). None of them imports torch or transformers.
"""
