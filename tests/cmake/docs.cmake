# The documentation (README.md, docs/*.md) against the program: commands, options, keys, paths, links.
reel_script_test(docs cli)
