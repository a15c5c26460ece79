// Module NatsMicro.
