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
        root.Subcommands.Add(CminCommand.Create());
        root.Subcommands.Add(TargetCheckCommand.Create());
        root.Subcommands.Add(SdkCommand.Create());
        var targetTimeout = new Option<double>("--target-timeout")
        {
            Description = "Seconds an external (exec:) target may take to answer one command before it counts as hung",
            DefaultValueFactory = _ => Composition.ExternalTimeout.TotalSeconds,
            Recursive = true,
        };
        root.Options.Add(targetTimeout);
        var oneAtATime = new Option<bool>("--target-one-at-a-time")
        {
            Description = "Send an external (exec:) target one command at a time and wait for each answer, even where its SDK keeps a journal that lets the harness send a case's operations ahead (slower; the verdicts are the same: for checking an SDK of your own)",
            Recursive = true,
        };
        root.Options.Add(oneAtATime);

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

        if (parsed.GetValue(targetTimeout) is var seconds && !(seconds > 0 && seconds <= 3600))
        {
            Console.Error.WriteLine($"eptfuzz: --target-timeout: {seconds} is not a number of seconds in (0, 3600]");
            return ExitCodes.BadInput;
        }

        Composition.ExternalTimeout = TimeSpan.FromSeconds(seconds);
        Composition.ExternalLookAhead = !parsed.GetValue(oneAtATime);

        // Our own handler, not System.CommandLine's: its default prints a stack trace and exits 1,
        // which here means "a divergence". A target that cannot run at all (an emulator missing,
        // an exec: path that does not start, a protocol version mismatch) is infrastructure.
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
