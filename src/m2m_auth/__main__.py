from m2m_auth._entry import main

main()
