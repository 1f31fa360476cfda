using System.CommandLine;
using EptFuzz.Cli.Commands;
using EptFuzz.Harness.Running;

namespace EptFuzz.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("eptfuzz: differential fuzzing and conformance harness for Intel EPT. Exit codes: 0 all agree, 1 divergence or failed expectation, 2 bad input or usage, 3 infrastructure failure.");
        root.Subcommands.Add(ReplayCommand.Create());
        root.Subcommands.Add(GateCommand.Create());
        root.Subcommands.Add(FuzzCommand.Create());
        root.Subcommands.Add(ReduceCommandLine.Create());
        root.Subcommands.Add(MergeCommand.Create());
        root.Subcommands.Add(ReportCommand.Create());

        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                Console.Error.WriteLine($"eptfuzz: {error.Message}");
            }

            Console.Error.WriteLine("eptfuzz: see 'eptfuzz --help'");
            return ExitCodes.BadInput;
        }

        // Our own handler, not System.CommandLine's: its default prints a stack trace and exits 1,
        // which here means "a divergence".
        try
        {
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (Failures.ExitCodeOf(e) is { } code)
        {
            Console.Error.WriteLine($"eptfuzz: {Failures.Describe(e)}");
            return code;
        }
    }
}
