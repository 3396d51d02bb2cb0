import PlugvisorCLI

PlugvisorCommand.main()
