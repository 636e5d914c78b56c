"""Entry points: the `astropolis` CLI now; the LangGraph agent, its LLM client and prompts later."""
