namespace EptFuzz.Contract;

/// <summary>
/// One step of a case as a hypervisor may see it before the case runs: the operation it will be
/// asked (<see cref="Call"/>, which makes exactly the call the runner will make, on whatever
/// hypervisor it is given), or the access a probe will make.
/// </summary>
/// <param name="Index">The step's index in the case.</param>
/// <param name="Call">Null for a step that calls no hypervisor method.</param>
/// <param name="Probe">The probe, for a probe step.</param>
public readonly record struct PlannedStep(int Index, Func<IEptHypervisor, ApiResult>? Call, Probe? Probe);

/// <summary>
/// A hypervisor that can run ahead of the runner: told a case's steps before
/// <see cref="IEptHypervisor.Configure"/>, it may start on its operations early (an external
/// target sends them to its process in one write instead of one round trip each). The runner
/// still makes every call, in order, and each call answers as if nothing had run ahead: what a
/// hypervisor does with the plan is invisible in its answers.
/// </summary>
public interface ILookAheadHypervisor
{
    void Plan(IReadOnlyList<PlannedStep> steps);
}
