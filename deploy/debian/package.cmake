# package.cmake: the Debian package, made by CPack (`cmake --build build --target package`
# writes build/fogate_<version>_<arch>.deb). Included at the end of the top CMakeLists.txt.
# Why CPack and not debhelper: the build already is CMake, and one command makes the .deb
# from any build directory, without a debian/ source-package tree or dpkg-buildpackage;
# what debhelper would add is done here explicitly: dpkg-shlibdeps (SHLIBDEPS below), a
# stripped binary, the conffile list, maintainer scripts (postinst/prerm/postrm: the system
# user, dpkg-statoverride for /etc/fogate, deb-systemd-helper), changelog.Debian.gz and
# copyright. docs/install.md says how it is built, installed and checked.

set(_deb "${CMAKE_CURRENT_LIST_DIR}")
set(_stage "${CMAKE_BINARY_DIR}/deb")

install(TARGETS fogate RUNTIME DESTINATION bin)
install(FILES "${PROJECT_SOURCE_DIR}/deploy/systemd/fogate.service"
        DESTINATION lib/systemd/system)
# mode 0640: dpkg-statoverride in postinst gives it (and /etc/fogate, 0750) the group fogate
install(FILES "${_deb}/fogate.json" DESTINATION /etc/fogate
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(DIRECTORY DESTINATION /etc/fogate
        DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE)

# /usr/share/doc/fogate: copyright, changelog.Debian.gz (gzip -9n: reproducible), the docs
file(MAKE_DIRECTORY "${_stage}")
add_custom_command(OUTPUT "${_stage}/changelog.Debian.gz"
  COMMAND gzip -9n -c "${_deb}/changelog" > "${_stage}/changelog.Debian.gz"
  DEPENDS "${_deb}/changelog" VERBATIM)
add_custom_command(OUTPUT "${_stage}/CONFIG.md.gz"
  COMMAND gzip -9n -c "${PROJECT_SOURCE_DIR}/conf/CONFIG.md" > "${_stage}/CONFIG.md.gz"
  DEPENDS "${PROJECT_SOURCE_DIR}/conf/CONFIG.md" VERBATIM)
add_custom_command(OUTPUT "${_stage}/fogate.1.gz"
  COMMAND gzip -9n -c "${_deb}/fogate.1" > "${_stage}/fogate.1.gz"
  DEPENDS "${_deb}/fogate.1" VERBATIM)
add_custom_target(deb-docs ALL
  DEPENDS "${_stage}/changelog.Debian.gz" "${_stage}/CONFIG.md.gz" "${_stage}/fogate.1.gz")
install(FILES "${_stage}/fogate.1.gz" DESTINATION share/man/man1)
install(FILES "${_deb}/lintian-overrides" DESTINATION share/lintian/overrides RENAME fogate)
install(FILES "${_deb}/copyright" DESTINATION share/doc/fogate)
install(FILES "${_stage}/changelog.Debian.gz" "${_stage}/CONFIG.md.gz"
              "${PROJECT_SOURCE_DIR}/docs/install.md"
        DESTINATION share/doc/fogate)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME fogate)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_DEBIAN_PACKAGE_RELEASE "${FOGATE_DEB_REVISION}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(FOGATE_DEB_MAINTAINER "fogate maintainers <fogate@example.com>" CACHE STRING
    "Maintainer field of the .deb")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${FOGATE_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "gateway in front of Microsoft Dynamics 365 Finance & Operations")
# the long description: CPack puts the summary first and indents each line by one space
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"fogate lets internal services exchange files with D365 F&O through its
recurring integrations and data package APIs. It holds and refreshes the
Entra ID tokens, rewrites download URLs, keeps an ack ledger in Redis so
that no export is delivered twice after it was confirmed, and streams
bodies both ways.

This package runs fogate as a hardened systemd service (user fogate) with
its configuration in /etc/fogate and its secrets passed in as systemd
credentials.")
# Runtime libraries come from dpkg-shlibdeps. libhiredict1.1.0 is in bookworm-backports only:
# its shlibs give the versioned dependency, and apt takes it from there once backports is a
# source (docs/install.md); nothing needs pinning, bookworm has no other candidate.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# adduser: postinst makes the system user; ca-certificates: TLS to Entra and D365 is verified;
# procps: /bin/kill of the unit's ExecReload= (not in a minimal Debian: 203/EXEC without it)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, ca-certificates, procps")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${_deb}/conffiles;${_deb}/postinst;${_deb}/prerm;${_deb}/postrm")
include(CPack)
