/* One function per subcommand, each in cmd_<name>.c. argv[0] is the
 * subcommand name. Return the process exit status. */
#ifndef SP_CLI_COMMANDS_H
#define SP_CLI_COMMANDS_H

int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_image(int argc, char **argv);

#endif
