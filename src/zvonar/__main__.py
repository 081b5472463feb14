from zvonar.cli import main

main()
