"""invoker_agent/runtime"""
