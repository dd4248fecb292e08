# version.cmake: the version fogate reports and the .deb carries, and the git commit it was
# built from, both fixed at configure time (included by the top CMakeLists.txt).
#   FOGATE_DEB_VERSION  "<upstream>-<revision>" from the top entry of deploy/debian/changelog;
#                       its upstream part must equal project(VERSION): one place to bump each
#   FOGATE_COMMIT       `git rev-parse --short=12 HEAD`, "-dirty" added when tracked files differ
#                       from it; "unknown" outside a git checkout (a source tarball). A build
#                       without .git that knows its commit passes it: -DFOGATE_COMMIT=<rev>
#                       (deploy/container/Containerfile does)
# CMake configures again when HEAD moves (the reflog is a configure dependency), so a build
# after a commit reports the new commit.

file(STRINGS "${CMAKE_CURRENT_LIST_DIR}/changelog" _fogate_top LIMIT_COUNT 1)
if(NOT _fogate_top MATCHES "^fogate \\(([^)-]+)-([^)]+)\\) ")
  message(FATAL_ERROR "deploy/debian/changelog: the first line must be 'fogate (<version>-<revision>) ...'")
endif()
if(NOT CMAKE_MATCH_1 STREQUAL PROJECT_VERSION)
  message(FATAL_ERROR "deploy/debian/changelog is at ${CMAKE_MATCH_1} but project(VERSION) is "
                      "${PROJECT_VERSION}: add a changelog entry (dch -v ${PROJECT_VERSION}-1)")
endif()
set(FOGATE_DEB_REVISION "${CMAKE_MATCH_2}")
set(FOGATE_DEB_VERSION "${PROJECT_VERSION}-${FOGATE_DEB_REVISION}")

set(FOGATE_COMMIT "" CACHE STRING
    "Commit that fogate --version reports; empty: asked from git at configure time")
if(FOGATE_COMMIT STREQUAL "")
  set(FOGATE_COMMIT "unknown") # a normal variable: the cache entry stays empty, so git is
endif()                        # asked again at the next configure
find_package(Git QUIET)
if(GIT_FOUND AND FOGATE_COMMIT STREQUAL "unknown")
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --short=12 HEAD
                  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
                  OUTPUT_VARIABLE _fogate_head RESULT_VARIABLE _fogate_rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_fogate_rc EQUAL 0 AND _fogate_head)
    set(FOGATE_COMMIT "${_fogate_head}")
    execute_process(COMMAND "${GIT_EXECUTABLE}" update-index -q --refresh
                    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}" OUTPUT_QUIET ERROR_QUIET)
    execute_process(COMMAND "${GIT_EXECUTABLE}" diff-index --quiet HEAD --
                    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}" RESULT_VARIABLE _fogate_dirty
                    OUTPUT_QUIET ERROR_QUIET)
    if(NOT _fogate_dirty EQUAL 0)
      string(APPEND FOGATE_COMMIT "-dirty")
    endif()
    execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --absolute-git-dir
                    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
                    OUTPUT_VARIABLE _fogate_gitdir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(EXISTS "${_fogate_gitdir}/logs/HEAD")
      set_property(DIRECTORY "${PROJECT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
                   "${_fogate_gitdir}/logs/HEAD")
    endif()
  endif()
endif()
message(STATUS "fogate ${FOGATE_DEB_VERSION}, commit ${FOGATE_COMMIT}")
