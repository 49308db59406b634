"""invoker_agent"""
