// Loaded by opencode as a plugin (the daemon adds it to opencode's config, supervisor/opencode_config.py).
// opencode reads OPENCODE_SERVER_PASSWORD once at start; deleting it here keeps it out of the environment
// of every shell and tool the agent runs afterwards (they inherit process.env).
delete process.env.OPENCODE_SERVER_PASSWORD;

export const DancodesScrubEnv = async () => {
  delete process.env.OPENCODE_SERVER_PASSWORD;
  return {};
};
