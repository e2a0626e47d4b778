"""`dancodes init`: the set-up wizard that writes a config and a 0600 env file of secrets.

`plan` decides (pure: what the files will say, from what they say now and what was answered);
`wizard` asks and writes.
"""
