import PlugvisorBroker

PlugvisorBroker.main()
