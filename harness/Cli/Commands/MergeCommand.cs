using System.CommandLine;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Running;

namespace EptFuzz.Cli.Commands;

/// <summary><c>eptfuzz merge OUT... --into DIR</c>: one corpus and one set of findings from sharded campaigns.</summary>
internal static class MergeCommand
{
    /// <summary>The coverage a merged queue is culled by: the model's rules on the default targets, as a campaign's.</summary>
    private static RunOptions CullOptions() => Composition.Options(Composition.CreateTargets(Composition.DefaultTargets).Targets, KnownDivergences.None, null, Composition.DefaultTargets);

    public static Command Create()
    {
        var inputs = new Argument<string[]>("campaigns") { Description = "Campaign directories (one per shard or machine)", Arity = ArgumentArity.OneOrMore };
        var into = new Option<string>("--into") { Description = "The merged campaign directory", DefaultValueFactory = _ => "fuzz-merged" };
        var allowMixed = new Option<bool>("--allow-mixed-profiles") { Description = "Merge campaigns of different --cpu-profile/--steps/--probe-weight, recording each input's profile (refused by default)" };
        var command = new Command("merge", "Merge the corpora and findings of several campaigns (the result cannot be resumed; fuzz --corpus DIR/queue starts from it)") { inputs, into, allowMixed };
        command.SetAction(parse =>
        {
            var dirs = parse.GetValue(inputs)!;
            var missing = dirs.Where(d => !Directory.Exists(d)).ToList();
            if (missing.Count > 0)
            {
                return Shared.Usage($"no such campaign directory: {string.Join(", ", missing)}");
            }

            MergeSummary summary;
            try
            {
                summary = CampaignMerge.Merge(dirs, parse.GetValue(into)!, parse.GetValue(allowMixed), CullOptions);
            }
            catch (CampaignUsageException e)
            {
                return Shared.Usage(e.Message);
            }

            foreach (var warning in summary.Warnings)
            {
                Console.Error.WriteLine($"eptfuzz: warning: {warning}");
            }

            Console.Out.WriteLine($"merged {summary.Inputs} campaigns into {parse.GetValue(into)}: {summary.QueueEntries} queue entries in the working set ({summary.DuplicateEntries} duplicates dropped, {summary.CulledEntries} culled to queue/culled), {summary.Findings.Count} unique findings");
            foreach (var f in summary.Findings)
            {
                Console.Out.WriteLine($"  {f.Signature} x{f.Count}");
            }

            return summary.Findings.Count > 0 ? ExitCodes.Divergence : ExitCodes.Ok;
        });
        return command;
    }
}
