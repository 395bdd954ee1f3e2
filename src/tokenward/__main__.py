from tokenward.cli.main import main

main()
