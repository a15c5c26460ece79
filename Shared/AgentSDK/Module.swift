// Module AgentSDK: the agent kind protocol, built-in kinds and the mailbox runtime.
