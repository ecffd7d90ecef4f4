# Embeds the programs of this folder (*.sh, *.pl, *.awk: what ScriptHost sends to a host) into
# the binary: at configure time each file becomes a raw string literal in a generated source
# file, byte for byte, and a change to a file re-runs the configuration. The constants are
# declared in embedded.h (one `NAME_EXT` per file, e.g. job_start_pl).
function(smcp_embed_scripts target folder)
  file(GLOB scripts CONFIGURE_DEPENDS ${folder}/*.sh ${folder}/*.pl ${folder}/*.awk)
  list(SORT scripts)
  set(delimiter "smcp_script")
  set(constants "")
  set(table "")
  foreach(script ${scripts})
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${script})
    get_filename_component(file_name ${script} NAME)
    string(MAKE_C_IDENTIFIER ${file_name} constant)
    file(READ ${script} text)
    string(FIND "${text}" ")${delimiter}\"" clash)
    if(NOT clash EQUAL -1)
      message(FATAL_ERROR "${script} contains `)${delimiter}\"`, the end of the raw string literal it is embedded in")
    endif()
    string(APPEND constants "const std::string_view ${constant} = R\"${delimiter}(${text})${delimiter}\";\n\n")
    string(APPEND table "      {\"${file_name}\", ${constant}},\n")
  endforeach()
  set(generated ${CMAKE_CURRENT_BINARY_DIR}/generated/embedded_scripts.cpp)
  file(WRITE ${generated}.new
       "// Generated from sandbox/exec/scripts/ by sandbox/exec/scripts/embed.cmake: edit those files.\n"
       "#include \"sandbox/exec/scripts/embedded.h\"\n\n"
       "namespace smcp::exec::scripts {\n\n"
       "${constants}"
       "std::span<const Embedded> all() {\n"
       "  static const Embedded k_all[] = {\n"
       "${table}"
       "  };\n"
       "  return k_all;\n"
       "}\n\n"
       "} // namespace smcp::exec::scripts\n")
  # Only a changed text touches the file, so a re-configuration does not rebuild it.
  configure_file(${generated}.new ${generated} COPYONLY)
  target_sources(${target} PRIVATE ${generated})
endfunction()
